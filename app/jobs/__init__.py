"""Background work run by RQ workers, and the periodic schedule declared as data."""
