"""Summary-page layouts, one per kind of result page, all drawn with the summary font
(:func:`imaging.capture.display_font`), wrapped to the width they are drawn in, and returned with
every text line drawn (:class:`imaging.capture.DrawnText`) so tests can check the layout:

    ``imaging.capture``               key images of a Volume or a 2D image with findings (lung, coronary)
    ``imaging.layouts.text``          a page of text lines (the echo summary)
    ``imaging.layouts.cardiac``       cine contours, volume curve and a table (cardiac function)
    ``imaging.layouts.mammography``   four views as hung for reading, marks and a legend

A pipeline fills the page's typed input (plain numbers, arrays and strings), calls the layout, and
hands the pixels to :func:`imaging.sc.write_page_capture` as a :class:`imaging.results.RenderedPage`.
"""
