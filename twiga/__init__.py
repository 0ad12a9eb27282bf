__version__ = "0.1.0"
# Hand-written (not exported from a notebook): `import twiga` must stay light, so the public names below
# are imported on first access, and mlflow, prefect, evidently and fastapi are never imported here.

__all__ = ["TwigaForecaster", "__version__"]


def __getattr__(name):
    if name == "TwigaForecaster":
        from twiga.forecaster import TwigaForecaster

        return TwigaForecaster
    raise AttributeError(f"module 'twiga' has no attribute {name!r}")
