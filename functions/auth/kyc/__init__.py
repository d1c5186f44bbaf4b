"""Pure computer-vision logic of the identity-verification (KYC) flow.

Nothing here imports the platform: ``kyc_steps.py`` wraps these modules as deployable steps, and
the tests and ``bench/kyc.py`` beside this package call them in-process. Modules import OpenCV and numpy at the top
(cheap) but load models only when asked (``ocr.engine()``, ``face.FaceModels.load()``).
"""
