from setuptools import find_packages, setup

package_name = "dfr_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="dfr maintainers",
    maintainer_email="maintainers@dfr.invalid",
    description="Graph description, runner and run recorder of the dfr stack.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "run_graph = dfr_bringup.runner:main",
        "run_recorder = dfr_bringup.run_recorder_node:main",
        "bag_recorder = dfr_bringup.bag_recorder_node:main",
        "foxglove_server = dfr_bringup.foxglove_server_node:main",
    ]},
)
