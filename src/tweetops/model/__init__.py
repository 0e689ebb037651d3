"""The model: its Spark ML pipeline (:mod:`.pipeline`), the fitted pipeline exported to numpy
arrays (:mod:`.arrays`) and the JVM-free `python_function` that serves them (:mod:`.pyfunc`).

Only the name of the output column lives here, so the served model imports no Spark.
"""

PREDICTION_COLUMN = "prediction"
