"""The serving path imports no training code.

Serving (the predictor role, ``nordiqd.serving``, and the model modules it loads and
forecasts through) runs in a long-lived process that must not carry the training
stack. This imports all of it in a fresh interpreter, loads a model (the load fails on
a missing directory, after its deferred imports have run), and checks what came in.

``lightning`` itself is in ``sys.modules`` whatever nordiqd does: pytorch-forecasting's
package ``__init__`` imports it, and the TFT is a ``LightningModule``. So the check is
that no nordiqd module imports ``lightning`` directly, and that none of the modules
that only training needs is loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Modules that only training, or the slow reference forecast, needs.
TRAINING_ONLY = (
    "nordiqd.model.dataset",
    "nordiqd.model.fitting",
    "nordiqd.model.trainer",
    "nordiqd.model.reference",
    "nordiqd.training",
)

_PROBE = textwrap.dedent(
    """
    import builtins
    import importlib
    import json
    import pkgutil
    import sys

    direct = []
    real_import = builtins.__import__

    def spy(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__", "")
        if level == 0 and name.split(".")[0] == "lightning" and importer.startswith("nordiqd"):
            direct.append(importer)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = spy

    import nordiqd.serving
    serving = [m.name for m in pkgutil.walk_packages(nordiqd.serving.__path__, "nordiqd.serving.")]
    for name in [
        *serving,
        "nordiqd.roles.predictor",
        "nordiqd.model.artifacts",
        "nordiqd.model.inference",
        "nordiqd.model.forecast",
    ]:
        importlib.import_module(name)

    from nordiqd.model import artifacts
    from nordiqd.model.errors import ModelLoadError

    try:
        artifacts.load("/nonexistent/nordiqd-model")
    except ModelLoadError:
        pass
    print(json.dumps({"modules": sorted(sys.modules), "direct": direct, "serving": serving}))
    """
)


def test_serving_imports_no_training_code() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    modules = set(found["modules"])
    # The probe really loaded the serving path, model loading included.
    assert found["serving"], "no serving modules were found to import"
    assert {"nordiqd.model.forecast", "nordiqd.model.network", "nordiqd.roles.predictor"} <= modules
    assert found["direct"] == [], f"nordiqd modules that import lightning: {found['direct']}"
    loaded = sorted(m for m in modules if any(m == t or m.startswith(t + ".") for t in TRAINING_ONLY))
    assert loaded == [], f"the serving path loads training code: {loaded}"
