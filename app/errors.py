"""Errors that are the user's to fix: entry points print their message instead of a traceback."""

from app.query import QueryError
from encoder.errors import EncoderError
from indexer.catalog import CatalogError
from indexer.lock import LockHeld
from indexer.pretrain_errors import PretrainError
from indexer.scan import RootError

USER_ERRORS = (QueryError, EncoderError, CatalogError, LockHeld, RootError, PretrainError)
