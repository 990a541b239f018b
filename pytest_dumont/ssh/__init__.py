"""SSH to rented instances: session keys (``keys``), hermetic connections and the wait for SSH (``connect``), raw
byte streams (``streams``)."""


def __getattr__(name: str) -> object:
    """Names of the old ``pytest_dumont.ssh`` module, read here with a DeprecationWarning."""
    from pytest_dumont._moved import folder_attribute

    return folder_attribute("ssh", name)
