from setuptools import find_packages, setup

package_name = "dfr_bridge"

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
    description="Flies one vehicle through MAVROS and serves its ExecuteMission action.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["bridge_node = dfr_bridge.bridge_node:main",
                                    "bridge_fleet = dfr_bridge.bridge_fleet:main"]},
)
