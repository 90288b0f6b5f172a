"""The one error the landing stage raises for things a person must look at."""


class LandingError(RuntimeError):
    """Landing cannot go on (an endpoint down past its retries, a corrupt marker, ...).

    Nothing is lost when it is raised: records not yet durable in the lake
    were not committed, and the next run re-reads them from Kafka.
    """
