"""The engine's own refusals about jobs and providers, worded once (as translatable
`Text`, see bot/i18n) so that service.py stays about the flow."""

from __future__ import annotations

from bot.engine.intake import RequestError
from bot.engine.models import Job, JobStatus
from bot.i18n import N_, Text

# A job's status as members read it.
STATUS_WORDS: dict[JobStatus, str] = {
    JobStatus.WAITING: N_("waiting"),
    JobStatus.SUBMITTING: N_("submitting"),
    JobStatus.SUBMITTED: N_("submitted"),
    JobStatus.RUNNING: N_("running"),
    JobStatus.NEEDS_INPUT: N_("needs_input"),  # as English has always shown it
    JobStatus.SUCCEEDED: N_("succeeded"),
    JobStatus.FAILED: N_("failed"),
    JobStatus.CANCELLED: N_("cancelled"),
}


def status_word(status: JobStatus) -> Text:
    """The status, translatable ("succeeded", "cancelled", ...)."""
    return Text(STATUS_WORDS.get(status, status.value))


def no_provider(name: str, names: str) -> RequestError:
    return RequestError(
        Text("There is no provider named {name!r}; pick one of: {names}.", name=name, names=names)
    )


def no_job(job_id: str) -> RequestError:
    return RequestError(Text("There is no job {job_id}.", job_id=job_id))


def already_finished(job: Job) -> RequestError:
    return RequestError(
        Text("Job {job_id} has already {status}.", job_id=job.id, status=status_word(job.status))
    )


def being_sent(job: Job) -> RequestError:
    return RequestError(
        Text(
            "Job {job_id} is being sent to its provider right now; press Cancel again in a moment.",
            job_id=job.id,
        )
    )


def parent_gone(job_id: str) -> RequestError:
    return RequestError(
        Text("Job {job_id} no longer exists, so its buttons cannot be used.", job_id=job_id)
    )


def parent_failed(job_id: str) -> RequestError:
    return RequestError(
        Text(
            "Job {job_id} has not finished successfully, so it has no results to act on.",
            job_id=job_id,
        )
    )


def not_offered(provider: str, action: str) -> RequestError:
    return RequestError(
        Text("{provider} does not offer {action}.", provider=provider, action=action)
    )


def job_does_not_offer(job_id: str, action: str, index: int, provider: str) -> RequestError:
    return RequestError(
        Text(
            "Job {job_id} does not offer {action}{index} on {provider}.",
            job_id=job_id,
            action=action,
            index=f" {index}" if index else "",
            provider=provider,
        )
    )
