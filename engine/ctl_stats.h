/*
 * storefrontctl: experiment results and live operations (ctl_stats.c).
 *
 *   stats [KEY] [--json]
 *   experiment start|stop KEY
 *   experiment ramp KEY COVERAGE          (0..1, or a percentage "10%")
 *   experiment weights KEY W1,W2,...      (re-randomises: bucket version)
 */

#ifndef CTL_STATS_H
#define CTL_STATS_H

/*
 * argv holds the arguments after the command's name; db_path is the
 * database given globally (may be NULL); "--db DIR" among the arguments
 * overrides it.  Returns the exit status: 0 success, 1 data or database
 * error (an unknown experiment, a change the engine refuses), 2 usage
 * error.  "--help" prints the command's usage and returns 0.
 */
int ctl_stats_command(const char *db_path, int argc, char **argv);
int ctl_experiment_command(const char *db_path, int argc, char **argv);

#endif /* CTL_STATS_H */
