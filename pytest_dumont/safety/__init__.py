"""What makes a session unable to leak money: arming, signals, the watchdog process, the on-instance dead-man switch,
budgets, the ledger file of live instances and reaping."""


def __getattr__(name: str) -> object:
    """Names of the old ``pytest_dumont.safety`` module, read here with a DeprecationWarning."""
    from pytest_dumont._moved import folder_attribute

    return folder_attribute("safety", name)
