"""Errors of pretraining and the reconstruction view that are the user's to fix (standard library only:
`app/errors.py` imports this for every command, and `status` must not import torch)."""


class PretrainError(Exception):
    """A pretraining run cannot start or go on; the message says why and what to do."""


class NoClipsError(PretrainError):
    """The library has no decodable clip to learn from."""


class NoDecoderError(PretrainError):
    """A reconstruction needs a pretraining checkpoint with a decoder, and there is none."""
