/**
 * Errors of the workflow commands. The CLI prints errors whose class name is
 * in its USER_ERRORS set as one line with exit code 2 (no stack).
 */

/** Bad flags or flag combinations (e.g. a malformed --grid). */
export class UsageError extends Error {}

/** A workflow step failed in a way already explained in one line (a sweep's base run, failed trials). */
export class WorkflowError extends Error {}

/** `rlhf verify` found a difference: the message names the first one. */
export class VerifyError extends Error {}
