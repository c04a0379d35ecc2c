"""`neuralab serve`: a local web app to play with convolution, look inside trained CNNs,
browse runs and compare forecasts. Starlette + uvicorn on the server, plain HTML and
JavaScript in the browser, nothing fetched from the internet (docs/web.md says why).

    app         routes, the server
    security    hosts answered, other sites refused, content types, security headers
    inputs      bodies within limits, JSON checked, the validators of every field
    runs        run directories under one root, never a step outside it
    playground  convolution and pooling on a picture, with the step view's numbers
    classify    models cached by run, top-k and feature maps of a drawing or upload
    forecast    a forecasting run's verdict, scores and curves from its files
    images      uploads read safely, PNG data URLs, samples, MNIST-style centring
    static/     the pages, their script and style, the sample pictures
"""

from neuralab.web.app import create_app, make_server

__all__ = ["create_app", "make_server"]
