"""Linux checks, one module per topic; each rule is one ``@rule`` function."""
