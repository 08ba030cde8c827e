"""Cardiac MRI left- and right-ventricular function from a short-axis cine (pipeline ``cardiac_mri``).

Pure measures (:mod:`.function`, :mod:`.reference`) know nothing of networks;
the network only labels LV blood pool, LV myocardium and RV blood pool pixels
(:mod:`.segment` runs it through :mod:`models.runtime`, :mod:`.network` defines it
for training).
"""
