"""Exceptions the engine raises; each carries a message fit to show a user as is."""


class StemwrightError(Exception):
    """Base class: a problem the user can act on (bad file, missing model, ...)."""


class AudioError(StemwrightError):
    """An audio file could not be read or written."""


class UnsupportedFormatError(AudioError):
    """The file is not in a format Stemwright can decode."""


class ModelError(StemwrightError):
    """A model could not be found, downloaded, imported or run."""


class ChecksumError(ModelError):
    """A downloaded or imported file does not match its expected checksum."""


class OfflineError(ModelError):
    """A model file had to be downloaded but the network was unreachable."""


class Cancelled(StemwrightError):
    """The user cancelled a long operation; nothing partial was kept."""


class OutputExistsError(StemwrightError):
    """Writing would replace an existing file and overwriting was not allowed."""
