"""What a study talks to outside this machine's processes: a Ray cluster (`ray_executor`, one task per run) and
the tracking tools (`tracking`: the common run form, targets and live tracking; `tracking_mlflow`,
`tracking_tensorboard`; `export`: a finished folder's runs written to them). Each needs an optional extra (`ray`,
`mlflow`, `tensorboard`) and imports it only when a study or a command asks for it. May import the rest of
`ablations` (records, store, study, execute); the rest imports only these modules' light names."""
