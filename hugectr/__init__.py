"""hugectr: NVIDIA HugeCTR's Python interface on PyTorch.

Scripts written for HugeCTR run unchanged::

    import hugectr
    solver = hugectr.CreateSolver(batchsize=2048, lr=0.001, vvgpu=[[0]])
    model = hugectr.Model(solver, reader, optimizer)

Public names are HugeCTR's, spelled exactly; every enum member is also exported at module
level (``hugectr.Adam``), as HugeCTR's pybind module does.
"""

from . import data, tools  # noqa: F401  (hugectr.data.DataSourceParams, hugectr.tools.DataGenerator)
from .callbacks import TrainingCallback
from .data.reader import DataReader as _DataReader
from .distributed.launch import quiet_until_joined as _quiet_until_joined
from .enums import *  # noqa: F401,F403
from .enums import module_level_members as _module_level_members
from .model import Model
from . import inference  # noqa: E402,F401  (hugectr.inference.InferenceParams, CreateInferenceSession)
from .optimizers.lr_scheduler import LearningRateScheduler
from .params import *  # noqa: F401,F403
from .version import __version__

# The low-level reader that get_data_reader_train / _eval return, under the names HugeCTR's releases gave
# its class (HEAD: Core23DataReader64 / 32 over the IDataReader base; <= 4.3: DataReader64 / 32); one
# class reads both key widths here.
IDataReader = Core23DataReader64 = Core23DataReader32 = DataReader64 = DataReader32 = _DataReader
globals().update(_module_level_members())
_quiet_until_joined()   # in a rank that a plain script started: the parent printed this part already
del _module_level_members, _quiet_until_joined, _DataReader

__all__ = ["Model", "TrainingCallback", "LearningRateScheduler", "__version__", "IDataReader", "Core23DataReader64",
           "Core23DataReader32", "DataReader64", "DataReader32"]
