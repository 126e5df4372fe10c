/*
 * refwatch — notices that the reference CSV was replaced or rewritten, so
 * the owner can load it again (reload.h) without a SIGHUP.
 *
 * It watches the file's directory, not the file: a deploy tool that writes
 * a new file and renames it over the old one replaces the inode, and a
 * watch on the old inode would go quiet. Every event naming the file (a
 * rename onto it, a write, a truncation) restarts a debounce timer; the
 * callback runs once the file has been left alone that long, so a file
 * written in several chunks is read once, whole. Events on other files of
 * the directory are ignored.
 *
 * Loop thread only. Ownership: the watcher copies the path. Errors: start
 * returns NULL with err set (the directory cannot be watched: missing, or
 * no inotify watches left); the owner logs it and goes on with SIGHUP only.
 */
#ifndef CAMJOIN_REFWATCH_H
#define CAMJOIN_REFWATCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct refwatch refwatch_t;
typedef void (*refwatch_cb)(void *ud);

refwatch_t *refwatch_start(uv_loop_t *loop, const char *path, uint64_t debounce_ms,
                           refwatch_cb changed, void *ud, char *err, size_t errlen);
/* Stops watching; the memory goes when the loop has closed the handles.
 * NULL is fine. No callback runs after this. */
void refwatch_close(refwatch_t *w);

#endif
