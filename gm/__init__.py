"""gm: an interactive lab for image generative models (library; never imports Streamlit)."""

__version__ = "0.1.0"


def load_model(path_or_run, device: str = "auto", checkpoint=None):
    """The model object of a run folder, a pretrained entry ("gan") or a run name, on `device`,
    without optimizers (see gm.models.loading.load_model)."""
    from gm.models.loading import load_model as _load
    return _load(path_or_run, device=device, checkpoint=checkpoint)
