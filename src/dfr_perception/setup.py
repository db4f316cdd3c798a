from setuptools import find_packages, setup

package_name = "dfr_perception"

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
    description="Perception: finds, tracks and geolocates moving people and vehicles in a drone's video.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["perception_node = dfr_perception.perception_node:main"]},
)
