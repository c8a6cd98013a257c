"""The exception hierarchy of llenergymeasure and the exit code each maps to.

::

    LLEMError                      exit 1  (base: anything this package raises on purpose)
    ├── ConfigError                exit 2  bad configuration or usage; names the file and field
    │   ├── ModelNotFoundError     exit 2  not a local path, embedded alias or reachable hub id
    │   └── DatasetError           exit 2  prompt source missing or malformed (names the line)
    ├── DependencyError            exit 1  an optional library or package is not installed
    ├── BackendError               exit 1  the inference library failed while loading or generating
    ├── EnergySamplerError         exit 1  an energy sampler could not start or read its counters
    │   └── SamplerUnavailableError        the requested sampler does not work on this machine
    ├── GpuError (devices.gpu)     exit 1  a GPU read failed (vendor errors translated there)
    │   ├── GpuNotSupportedError           the device lacks this reading
    │   ├── GpuLostError                   the device fell off the bus / needs a reset
    │   └── GpuUnavailableError            no driver, library or visible GPU
    ├── ResultsError               exit 1  result or study files (results, manifest, study
    │                                      directory, device lock) could not be written or read
    └── LockedError (study.lock)   exit 1  another llem process holds what this run needs
        ├── DeviceBusyError                a device is measuring for another process
        └── StudyInUseError                the study directory is being run by another process

Vendor exceptions (torch, transformers, pynvml, codecarbon, ...) are translated into these at the
boundary of the module that calls the vendor library; nothing above that layer sees them.
"""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LLEMError(Exception):
    """Base class of every error llenergymeasure raises on purpose."""

    exit_code: int = EXIT_FAILURE


class ConfigError(LLEMError):
    """The configuration or the command line is invalid; nothing was run."""

    exit_code = EXIT_USAGE


class ModelNotFoundError(ConfigError):
    """The model is not a local path, an embedded alias, or a reachable Hugging Face id."""


class DatasetError(ConfigError):
    """The prompt source does not exist or cannot be parsed."""


class DependencyError(LLEMError):
    """An optional dependency needed for the requested feature is missing."""


class BackendError(LLEMError):
    """The inference library failed while loading a model or generating."""


class EnergySamplerError(LLEMError):
    """An energy sampler failed to start or to read its counters."""


class SamplerUnavailableError(EnergySamplerError):
    """The requested energy sampler cannot work on this machine (the message says why)."""


class ResultsError(LLEMError):
    """Result or study files could not be written or read (the message names the path)."""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` of an exception, for messages that wrap a vendor's error.

    Never raises: some vendor exceptions (pynvml's) build their text by calling into a library
    that may be gone, and then only the type is given.
    """
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_os_error(exc: OSError, path: object = None) -> str:
    """``<path>: <cause> (<ERRNO>)`` for a file-system error, on one line.

    Args:
        exc: the error (``ENOSPC``, ``EROFS``, ``EACCES``, ``ENAMETOOLONG``, ...).
        path: the path to name; by default the one the error carries. An error raised by a
            write to an open file carries none, so callers that know the path pass it.
    """
    where = path if path is not None else exc.filename
    code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    cause = exc.strerror or (os.strerror(exc.errno) if exc.errno is not None else str(exc))
    cause = f"{cause} ({code})" if code else cause
    return f"{where}: {cause}" if where is not None else cause
