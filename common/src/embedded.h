/* Internal: files compiled into the library (schemas/, by cmake/EmbedFiles.cmake). */
#ifndef SAGA_EMBEDDED_H
#define SAGA_EMBEDDED_H

#include <stddef.h>

struct saga_embedded_file {
    const char *path; /* below schemas/: "OrderPlaced.avsc", "released/0.1.0/OrderPlaced.avsc" */
    const char *data; /* NUL-terminated */
    size_t len;
};

extern const struct saga_embedded_file saga_embedded_schemas[];
extern const size_t saga_embedded_schemas_count;

#endif
