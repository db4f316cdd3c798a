from setuptools import find_packages, setup

package_name = "dfr_sim"

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
    description="PX4-like multirotors behind MAVROS's ROS 2 interface, and /clock.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["sim_node = dfr_sim.sim_node:main", "camera_node = dfr_sim.camera_node:main"]},
)
