from setuptools import find_packages, setup

package_name = "dfr_follow"

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
    description="Follow: keeps the chosen target in view at a stand-off, inside permitted airspace.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["follow_node = dfr_follow.follow_node:main"]},
)
