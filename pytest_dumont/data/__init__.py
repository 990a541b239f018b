"""Data files the package ships (reference prices, the scenarios' operations) and their readers."""
