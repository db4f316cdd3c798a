from setuptools import find_packages, setup

package_name = "dfr_intake"

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
    description="Incident intake: validates calls, applies the launch policy and publishes incidents.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "intake_node = dfr_intake.intake_node:main",
        "scenario_feed = dfr_intake.scenario_feed_node:main",
        "cad_gateway = dfr_intake.cad_gateway_node:main",
    ]},
)
