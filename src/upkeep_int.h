/*
 * upkeep_int.h — file helpers of the upkeep module, shared by upkeep.c (the
 * run) and upkeep_archive.c (names, manifest text, durable files). Private
 * to the module.
 *
 * Each returns 0, or -1 with errno set. "Durable" means the data and the
 * name are on disk when the call returns: the file is fsynced, then renamed,
 * then its directory is fsynced.
 */
#ifndef CAMJOIN_UPKEEP_INT_H
#define CAMJOIN_UPKEEP_INT_H

#include <stdint.h>

int upkeep_fsync_dir(const char *dir);
/* mkdir -p (mode 0750), fsyncing the parent of each directory it makes. */
int upkeep_make_dirs(const char *path);
/* rename(tmp, final), then fsync dir (final's directory); tmp must have
 * been fsynced already. */
int upkeep_publish(const char *tmp, const char *final, const char *dir);
/* Creates (or truncates) path with text, fsynced. */
int upkeep_write_durable(const char *path, const char *text);
/* XXH64, seed 0, of a whole file. */
int upkeep_hash_file(const char *path, uint64_t *out);
/* 1 present, 0 absent, -1 cannot tell (errno: a path through a regular
 * file, no permission). */
int upkeep_file_state(const char *path);

#endif
