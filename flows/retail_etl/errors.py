"""Every error retail-etl raises on purpose, under one base class.

Each family carries the exit code the command line ends with, so a script can tell
a refused promotion from a missing landing day without reading the message.

>>> issubclass(EmptyLandingError, RetailEtlError), EmptyLandingError.exit_code
(True, 4)
>>> RejectedFile("empty_file", "s1.csv has no bytes").reason
'empty_file'
"""

from __future__ import annotations


class RetailEtlError(Exception):
    """Base of every error retail-etl raises on purpose."""

    exit_code = 1


class ConfigurationError(RetailEtlError):
    """A setting, option or parameter is invalid."""

    exit_code = 3


class LandingError(RetailEtlError):
    """The landing data of a day cannot be processed as asked."""

    exit_code = 4


class EmptyLandingError(LandingError):
    """No landing file for the day: most likely a wrong path or a late upload, so the
    published day is not replaced by an empty one unless that is asked for."""


class StrictModeError(LandingError):
    """--strict and at least one landing file could not be read."""


class BackfillError(LandingError):
    """At least one day of a backfill failed (the others were still attempted)."""


class StorageAccessError(RetailEtlError):
    """The storage refused access: wrong or missing credentials, a bucket policy, a folder's
    permissions. Retrying cannot fix that, so it is never retried; the message names the
    operation and the URL."""

    exit_code = 11


class RunFailedError(RetailEtlError):
    """A flow run failed for a reason outside the families above (an I/O error, a bug);
    the run's log has the traceback."""

    exit_code = 9


class RejectedFile(RetailEtlError):
    """A landing file that cannot be read at all; it goes to quarantine/files whole.

    This is a verdict on one file, not a failure of the run: the pipeline records it
    and publishes the rest of the day.
    """

    exit_code = 4

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[RejectedFile], tuple[str, str]]:
        # keep reason and detail through pickling (Dask, result storage)
        return (RejectedFile, (self.reason, self.detail))


class DataIntegrityError(RetailEtlError):
    """Published figures would not add up; nothing is published."""

    exit_code = 5


class RowAccountingError(DataIntegrityError):
    """rows_in != rows_published + rows_quarantined: something was lost."""


class PublicationError(RetailEtlError):
    """A day could not be published; the previously published day is unchanged."""

    exit_code = 10


class PublishConflict(PublicationError):
    """Another run published the same day meanwhile; this run's commit was refused."""


class DayBusy(PublicationError):
    """Another run of the same day held the day's publication slot for longer than the wait allows."""


class DeploymentError(RetailEtlError):
    """Registering or promoting deployments cannot go ahead."""

    exit_code = 6


class SplitBuild(DeploymentError):
    """The Dask workers run another build than the flow (an environment promoted halfway)."""


class RegistrationError(DeploymentError):
    """The project file or the environment it names is not usable."""


class PromotionRefused(DeploymentError):
    """The source build is not known to be good (or there is nothing to promote).

    `reason` is what is wrong and `remedy` what to do about it; a forced promotion reports the
    reason alone (telling someone who used --force to use --force helps nobody).
    """

    def __init__(self, reason: str, remedy: str = "") -> None:
        super().__init__(f"{reason}: {remedy}" if remedy else reason)
        self.reason = reason
        self.remedy = remedy


class ApiNotConfigured(DeploymentError):
    """No Prefect API is configured (PREFECT_API_URL, nor in the active profile): register and
    promote refuse rather than write into a temporary server that vanishes with the command."""

    exit_code = 20


class ApiUnreachable(DeploymentError):
    """The configured Prefect API does not answer its health check."""

    exit_code = 21


class UnknownEnvironment(RegistrationError):
    """An environment no deployment is tagged for (``env:<name>``)."""

    exit_code = 22


class WorkPoolTypeMismatch(DeploymentError):
    """The environment's work pool exists with another type than the one asked for."""

    exit_code = 23


class NothingPublishedError(RetailEtlError):
    """A read found no published day in the asked range."""

    exit_code = 7


class BenchError(RetailEtlError):
    """The benchmark could not run or its contenders disagree."""

    exit_code = 8


class GateRefused(PromotionRefused):
    """The source environment has no Completed run of the build to promote (the gate): its
    latest finished run ran another build, or did not complete, or there is none."""

    exit_code = 24


class UnknownBuild(PromotionRefused):
    """A rollback names a build that was never promoted to the environment (no audit record)."""

    exit_code = 25


class AuditError(DeploymentError):
    """The promotion's audit record cannot be written; nothing was promoted."""

    exit_code = 26


class ValuesFileError(DeploymentError):
    """The environment's Helm values file cannot be rewritten (missing, or no image block to edit)."""

    exit_code = 27


class HelmUpgradeFailed(DeploymentError):
    """`helm upgrade` of the promoted values file failed (the values file is already rewritten)."""

    exit_code = 28
