"""Map the repository's top-level code folders onto the ``hmrt`` package.

DESIGN.md keeps ``runtime/ train/ calib/ export/ assets/`` at the top of the repository; this
file makes them ``hmrt.runtime`` etc. and discovers their sub-packages, so nobody has to keep a
package list by hand. All other metadata lives in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

ROOTS = {
    "hmrt": "src/hmrt",
    "hmrt.runtime": "runtime",
    "hmrt.train": "train",
    "hmrt.calib": "calib",
    "hmrt.export": "export",
    "hmrt.assets": "assets",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    # assets/ holds data folders without __init__.py: list them as (namespace) packages too.
    finder = find_namespace_packages if name == "hmrt.assets" else find_packages
    for sub in finder(folder, exclude=["tests", "tests.*", "__pycache__"]):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        # The lean install runs `hmrt demo` from these alone: weights as ONNX, clip + truth.
        "hmrt.assets": [
            "**/*.npz",
            "**/*.json",
            "**/*.md",
            "**/*.pt",
            "**/*.onnx",
            "**/*.mp4",
            "**/LICENSE*",
            "**/*.txt",
        ],
        "hmrt.export": ["*.csv", "*.md", "*.json"],
        "hmrt.train": ["models/*/official_manifest.json"],
    },
    include_package_data=True,
)
