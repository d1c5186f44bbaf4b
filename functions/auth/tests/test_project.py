"""The deployable project: declarations, the flow's shape, module names, and a light import."""

from __future__ import annotations

import subprocess
import sys

from fnplatform.bundles import packaging as packaging

from .conftest import PROJECT


def test_packaging_discovers_five_steps_and_the_kyc_flow() -> None:
    packaging.check_module_names([name for name, _ in packaging.collect_files(PROJECT)])
    manifest = packaging.discover(PROJECT)
    functions = {spec.name: spec for spec in manifest.functions}
    assert set(functions) == {"kyc-front", "kyc-back", "kyc-face", "kyc-quality", "kyc-decide"}
    assert all(spec.internal for spec in functions.values())  # only the flow calls the steps; no HTTP endpoint
    assert functions["kyc-face"].pool == "gpu" and functions["kyc-face"].kind == "model"
    assert functions["kyc-front"].pool == "cpu"
    assert "rapidocr==3.10.0" in manifest.requirements
    (flow,) = manifest.flows
    assert flow.name == "kyc" and flow.inputs == ("front", "back", "selfie")
    assert flow.optional == ("back",)  # a passport page carries its own MRZ
    steps = {step.name: step.inputs for step in flow.steps}
    assert steps["kyc-face"] == {"selfie": "input:selfie", "kyc_front": "step:kyc-front"}
    assert flow.output == "kyc-decide"
    assert set(steps["kyc-decide"].values()) == {"step:kyc-front", "step:kyc-back", "step:kyc-face", "step:kyc-quality"}


def test_importing_the_steps_loads_no_heavy_library() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kyc_steps; "
            "heavy = [m for m in ('cv2', 'dlib', 'onnxruntime', 'rapidocr', 'numpy') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(PROJECT)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
