"""Coronary artery calcium scoring on gated non-contrast CT (pipeline ``coronary_ct``).

Pure measures (:mod:`.calcium`, :mod:`.cadrads`) know nothing of networks; the
network only says which vessel each candidate lesion belongs to
(:mod:`.patches` builds its input, :mod:`.network` defines it for training).
"""
