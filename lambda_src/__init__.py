"""The WebSocket API's handler, deployed to Lambda and run by `wsctl local up`.

Lambda's handler setting is `lambda_src.app.handler`; see app.py.
"""
