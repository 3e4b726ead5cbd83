"""Video colorization: streamed decoding and encoding (PyAV), optical flow on the gray frames
(OpenCV's DIS), a temporal stabiliser of the predicted ab, local hints carried from keyframes
through their shot, and temporal-consistency metrics.

Needs the ``video`` extra: ``pip install -e ".[video]"`` (PyAV and opencv-python-headless).
"""
