"""One training framework for every imaging task: :mod:`spec` (the TaskSpec interface and the registry),
:mod:`config` (the TOML run configuration), :mod:`data` (cached datasets, splits), :mod:`loop` (train, evaluate,
fit the operating point, export), :mod:`export` (ONNX and ``config.pbtxt``), :mod:`metrics` (bootstrap
intervals), :mod:`plots`."""
