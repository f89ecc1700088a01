"""Learning: APEX (apex/), the student MLP and its training, the aggregated dataset, and
POLO's value ensemble and loop."""
