"""Surge detectors: one file per detector, registered by name next to its code (base.py's registry).

``DetectorConfig`` (config.py) names the detector; ``get_detector(name)`` finds it. Importing this
package loads no river: the river detectors import it when they run.
"""
