"""Post-hoc calibrations of the box predictor's probabilities, one registered module per method
(``MODEL.BALMS.CALIBRATION``), each file holding the method's maths beside its module. Importing this
package registers the built-in ones."""
from .base import CALIBRATION_REGISTRY, Calibration, NoCalibration, calibration_class
from .logit_adjustment import LogitAdjustment, posthoc_adjust
from .norcal import NorCal, norcal_probs

__all__ = ["CALIBRATION_REGISTRY", "Calibration", "NoCalibration", "calibration_class", "LogitAdjustment",
           "posthoc_adjust", "NorCal", "norcal_probs"]
