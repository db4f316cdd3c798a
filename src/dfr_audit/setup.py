from setuptools import find_packages, setup

package_name = "dfr_audit"

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
    description="Accountability: the hash-chained audit log, retention, and the transparency report.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["audit_node = dfr_audit.audit_node:main",
                                      "audit_verify = dfr_audit.verify:main",
                                      "audit_retention = dfr_audit.retention:main",
                                      "transparency_report = dfr_audit.transparency_report:main"]},
)
