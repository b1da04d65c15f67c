"""Test/CI environment shim, installed into .venv by scripts/setup_env.sh; never imported
by library code.

PyPI's torchvision 0.28 wheel is a CUDA build. Beside the CPU torch 2.13.0 wheel its
compiled ops do not load, and ``import torchvision`` fails with "operator torchvision::nms
does not exist" because its meta registrations refer to ops that were never defined.
Defining the two op schemas first (``nms`` and ``qnms``) lets torchvision import; the
ops themselves are not used by reportgen (open_clip and torchxrayvision only need
transforms and models).

The shim is lazy: a meta-path finder runs the fix only when torchvision is imported, so
interpreters that never touch torchvision never import torch.
"""

import importlib.abc
import sys


class _TorchvisionCpuShim(importlib.abc.MetaPathFinder):
    done = False

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision" or self.done:
            return None
        type(self).done = True
        try:
            import torch

            if getattr(torch.version, "cuda", None):
                return None  # a CUDA torch: torchvision's own ops load
            # Keep the library object alive: dropping it would remove the definitions.
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TorchvisionCpuShim._lib = lib
        except Exception:  # already defined, or torch missing: let the real import speak
            pass
        return None


if not any(isinstance(f, _TorchvisionCpuShim) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionCpuShim())
