"""Post-hoc calibrations of the box predictor's probabilities, one registered module per method
(``MODEL.BALMS.CALIBRATION``). Importing this package registers the built-in ones."""
from .base import CALIBRATION_REGISTRY, Calibration, NoCalibration, calibration_class
from .logit_adjustment import LogitAdjustment
from .norcal import NorCal

__all__ = ["CALIBRATION_REGISTRY", "Calibration", "NoCalibration", "calibration_class", "LogitAdjustment", "NorCal"]
