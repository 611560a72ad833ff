"""Every foreseeable failure, as an exception whose message says what to do next.

The library raises these; only the CLI and UI turn them into exit codes and messages.
"""


class AskPapersError(Exception):
    """Base class: a problem the user can fix; str(e) is the one-line message."""

    exit_code = 1


class ConfigError(AskPapersError):
    """A setting is unknown or has an invalid value."""

    exit_code = 2


class SourceError(AskPapersError):
    """A corpus source is missing, empty, unreadable or not in a known format."""

    exit_code = 3


class IndexMissingError(AskPapersError):
    """No index has been built yet at the configured place."""

    exit_code = 4


class IndexCorruptError(AskPapersError):
    """An index on disk is damaged or incomplete."""

    exit_code = 4


class IndexMismatchError(AskPapersError):
    """An index was built with settings other than the current ones."""

    exit_code = 4


class IndexBusyError(AskPapersError):
    """Another build holds the index lock."""

    exit_code = 5


class IndexWriteError(AskPapersError):
    """The index directory cannot be written."""

    exit_code = 4


class VectorStoreError(AskPapersError):
    """An external vector store (Milvus) cannot be reached, or refused an operation."""

    exit_code = 4


class ModelError(AskPapersError):
    """A model file is missing, corrupt or cannot be loaded."""

    exit_code = 6


class EndpointError(AskPapersError):
    """A hosted LLM endpoint is down, slow, or answered something unusable."""

    exit_code = 7


class QuestionError(AskPapersError):
    """The question cannot be answered as given (empty, too long, not text)."""

    exit_code = 2


class MissingExtraError(AskPapersError):
    """A package a feature needs is not installed (an optional extra, or a broken install):
    the one error for every failed import of a dependency."""

    exit_code = 8


class ClusterError(AskPapersError):
    """A Ray cluster cannot be reached, or failed during a distributed build."""

    exit_code = 9
