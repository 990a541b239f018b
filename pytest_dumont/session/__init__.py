"""One pytest session's view: settings, markers, session state, its paid resources, prewarming and pytest-xdist."""


def __getattr__(name: str) -> object:
    """Names of the old ``pytest_dumont.session`` module, read here with a DeprecationWarning."""
    from pytest_dumont._moved import folder_attribute

    return folder_attribute("session", name)
