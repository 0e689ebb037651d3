# Sourced by Spark's launch scripts when tweetops points SPARK_CONF_DIR here (local masters,
# no SPARK_HOME or SPARK_CONF_DIR of the user's, default verbosity). The JVM prints two notices
# no setting turns off: the incubator-module warning (Spark always starts it with
# --add-modules=jdk.incubator.vector) and, in PySpark, "Setting default log level to ..." with
# its hint (Spark's shell logic, whatever log4j2 says). Drop those lines, keep everything else.
exec 2> >(grep --line-buffered -v -e '^WARNING: Using incubator modules' \
  -e '^Setting default log level to ' -e '^To adjust logging level use sc.setLogLevel' >&2)
# On the JVM's class path an empty folder stands in for this one: Java's class-data sharing
# (tweetops.spark_cds) refuses a class path with a non-empty folder in it. log4j2.properties is
# named by -Dlog4j2.configurationFile, so nothing here is needed on the class path.
if [ -n "${TWEETOPS_SPARK_CLASSPATH_CONF_DIR:-}" ]; then
  SPARK_CONF_DIR="$TWEETOPS_SPARK_CLASSPATH_CONF_DIR"
fi
