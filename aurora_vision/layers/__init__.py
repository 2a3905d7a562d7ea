from .adapter import AdapterLinear
from .aurora import AuroraLinear
from .lora import LoraLinear
from .nonlinearity import AdaptiveNonlinearity
from .spline import BSplineBasis, bspline_bases_reference, cubic_bspline_bases_uniform, uniform_knots
