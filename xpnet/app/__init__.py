"""The application on top of the library: the ``xpnet`` command and what it needs.

``cli`` (argument parsing and exit codes), ``train`` (a training run),
``runs`` (run folders), ``presets``, ``data`` (the data sets the command
trains on), ``gradcheck``, ``info`` and the ``sweep`` package (``xpnet
sweep``; :mod:`xpnet.sweep` is its Python name and part of this floor).
"""
