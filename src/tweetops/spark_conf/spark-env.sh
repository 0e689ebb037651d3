# Sourced by Spark's launch scripts when tweetops points SPARK_CONF_DIR here (local masters,
# no SPARK_HOME or SPARK_CONF_DIR of the user's, default verbosity). Spark always starts the
# JVM with --add-modules=jdk.incubator.vector and the JVM then prints a warning no option
# turns off: drop that one line from the JVM's stderr, keep everything else.
exec 2> >(grep --line-buffered -v '^WARNING: Using incubator modules' >&2)
