"""What ML engineers run: phantoms, dataset readers, training, evaluation, export to triton_repo/."""
