"""Errors the encoder package raises for problems the user can fix; messages say how."""


class EncoderError(Exception):
    """Base class: an encoder that cannot be built as asked."""


class ConfigError(EncoderError, ValueError):
    """An unknown variant or an impossible setting (e.g. an odd frame count)."""


class WeightsError(EncoderError, RuntimeError):
    """Weights that cannot be had or read."""


class CheckpointError(EncoderError, ValueError):
    """A checkpoint that does not fit the requested architecture."""
