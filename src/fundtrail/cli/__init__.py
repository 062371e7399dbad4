"""The ``fundtrail`` command line: one module per noun, thin shells over the services."""
