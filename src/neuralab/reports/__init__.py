"""Reports: figures and self-contained HTML pages, drawn from plain data (arrays, dicts,
texts), never from a trainer, a forecaster or a run's files.

    plots       how a figure is made and saved (matplotlib's Agg canvas, atomic PNGs), and the
                shared figures: learning curves, confusion matrix, image grid, side by side
    html        the page builder: one style, verdict, lead, sections, tables, pictures inline
    classifier  an image-classifier run's report
    forecast    a forecast run's report and its figures
    inspect     a CNN's feature maps and first-layer filters as pictures
"""
