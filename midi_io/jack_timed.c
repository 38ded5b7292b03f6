/* Timed JACK MIDI: an output port that writes each message at the frame of its due time, and an input port
 * that stamps each message with the time of its frame (what a DAW records). The process callbacks never touch
 * Python, so they never wait for the GIL: Python hands messages over ahead of time through a lock-free
 * single-consumer ring (producers serialise on a mutex), and reads received ones from another.
 *
 * Built on first use by midi_io/jack_timed.py (cc -O2 -shared -fPIC ... -l:libjack.so.0) and loaded with ctypes.
 * The few JACK declarations needed are written out below (JACK's C ABI is stable), so only libjack's runtime
 * library is needed, not its headers. Times are JACK microseconds (jack_get_time()).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the JACK API used here (jack/jack.h, jack/midiport.h, jack/types.h) ---- */
typedef uint32_t jack_nframes_t;
typedef uint64_t jack_time_t;
typedef struct _jack_client jack_client_t;
typedef struct _jack_port jack_port_t;
typedef unsigned char jack_midi_data_t;
typedef struct {
    jack_nframes_t time;
    size_t size;
    jack_midi_data_t *buffer;
} jack_midi_event_t;
enum { JackNoStartServer = 0x01 };
enum { JackPortIsInput = 0x1, JackPortIsOutput = 0x2 };
#define JACK_MIDI_TYPE "8 bit raw midi"

extern jack_client_t *jack_client_open(const char *client_name, int options, int *status, ...);
extern int jack_client_close(jack_client_t *client);
extern int jack_activate(jack_client_t *client);
extern int jack_deactivate(jack_client_t *client);
extern int jack_set_process_callback(jack_client_t *client, int (*cb)(jack_nframes_t, void *), void *arg);
extern void jack_on_shutdown(jack_client_t *client, void (*cb)(void *), void *arg);
extern jack_port_t *jack_port_register(jack_client_t *client, const char *name, const char *type,
                                       unsigned long flags, unsigned long buffer_size);
extern const char *jack_port_name(const jack_port_t *port);
extern void *jack_port_get_buffer(jack_port_t *port, jack_nframes_t nframes);
extern int jack_connect(jack_client_t *client, const char *source, const char *destination);
extern void jack_midi_clear_buffer(void *buffer);
extern int jack_midi_event_write(void *buffer, jack_nframes_t time, const jack_midi_data_t *data, size_t size);
extern uint32_t jack_midi_get_event_count(void *buffer);
extern int jack_midi_event_get(jack_midi_event_t *event, void *buffer, uint32_t index);
extern int jack_get_cycle_times(const jack_client_t *client, jack_nframes_t *current_frames,
                                jack_time_t *current_usecs, jack_time_t *next_usecs, float *period_usecs);
extern jack_time_t jack_get_time(void);
extern void jack_set_error_function(void (*func)(const char *));
extern void jack_set_info_function(void (*func)(const char *));

/* ---- records and rings ---- */
#define JT_MAX_BYTES 52  /* channel messages are 1-3 bytes; short SysEx fits too */
#define JT_RING 8192     /* records per ring (a power of two) */
#define JT_PENDING 8192  /* messages the output holds until their cycle */
#define JT_FLUSH 0xFF    /* a record kind, not a MIDI byte count: drop what is pending, release sounding notes */

typedef struct {
    uint64_t due;  /* JACK usecs; 0 = as soon as possible */
    uint32_t size; /* bytes in data, or JT_FLUSH */
    uint8_t data[JT_MAX_BYTES];
} jt_record;

typedef struct {
    jt_record slots[JT_RING];
    _Atomic uint64_t head; /* next to write (producer) */
    _Atomic uint64_t tail; /* next to read (consumer) */
} jt_ring;

static int ring_push(jt_ring *r, const jt_record *rec) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= JT_RING) return 0;
    r->slots[head & (JT_RING - 1)] = *rec;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 1;
}

static int ring_pop(jt_ring *r, jt_record *rec) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail == head) return 0;
    *rec = r->slots[tail & (JT_RING - 1)];
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 1;
}

typedef struct {
    jack_client_t *client;
    jack_port_t *port;
    int is_output;
    jt_ring ring;               /* output: Python -> process; input: process -> Python */
    pthread_mutex_t producers;  /* output: Python threads pushing */
    /* process thread only (output) */
    jt_record pending[JT_PENDING]; /* sorted by due; equal dues keep their order */
    uint32_t n_pending;
    uint8_t sounding[16][128];  /* note-ons written minus note-offs, per channel and key (saturating) */
    /* counters, read from Python */
    _Atomic uint64_t written;
    _Atomic uint64_t late;           /* output: written in a cycle after the one holding their due time */
    _Atomic uint64_t max_late_usecs; /* output: largest (cycle start - due) of those */
    _Atomic uint64_t dropped;        /* input: ring full; output: pending full */
    _Atomic uint64_t queued;         /* output: in the ring or pending, not yet written */
    _Atomic int shutdown;            /* the server went away */
} jt_port;

static void note_written(jt_port *p, const uint8_t *d, uint32_t n) {
    if (n < 3) return;
    uint8_t kind = d[0] & 0xF0, ch = d[0] & 0x0F, key = d[1] & 0x7F;
    if (kind == 0x90 && d[2] > 0) {
        if (p->sounding[ch][key] < 255) p->sounding[ch][key]++;
    } else if (kind == 0x80 || kind == 0x90) {
        p->sounding[ch][key] = 0;
    }
}

static void insert_pending(jt_port *p, const jt_record *rec) {
    if (p->n_pending >= JT_PENDING) {
        atomic_fetch_add(&p->dropped, 1);
        atomic_fetch_sub(&p->queued, 1);
        return;
    }
    uint32_t i = p->n_pending;
    while (i > 0 && p->pending[i - 1].due > rec->due) i--;
    memmove(&p->pending[i + 1], &p->pending[i], (p->n_pending - i) * sizeof(jt_record));
    p->pending[i] = *rec;
    p->n_pending++;
}

static void flush_pending(jt_port *p) {
    atomic_fetch_sub(&p->queued, p->n_pending);
    p->n_pending = 0;
    for (int ch = 0; ch < 16; ch++) {
        for (int key = 0; key < 128; key++) {
            if (!p->sounding[ch][key]) continue;
            jt_record off = {.due = 0, .size = 3, .data = {(uint8_t)(0x80 | ch), (uint8_t)key, 0}};
            atomic_fetch_add(&p->queued, 1);
            insert_pending(p, &off);
        }
    }
}

static int process_output(jack_nframes_t nframes, jt_port *p) {
    void *buf = jack_port_get_buffer(p->port, nframes);
    jack_midi_clear_buffer(buf);
    jt_record rec;
    while (ring_pop(&p->ring, &rec)) {
        if (rec.size == JT_FLUSH) flush_pending(p);
        else insert_pending(p, &rec);
    }
    jack_nframes_t frames;
    jack_time_t now_us, next_us;
    float period;
    if (jack_get_cycle_times(p->client, &frames, &now_us, &next_us, &period) != 0 || next_us <= now_us) {
        now_us = jack_get_time();
        next_us = now_us + 1;  /* no timing: write only what is due */
    }
    jack_nframes_t last = 0;
    uint32_t done = 0;
    while (done < p->n_pending && p->pending[done].due < next_us) {
        jt_record *r = &p->pending[done];
        jack_nframes_t at = 0;
        if (r->due > now_us) at = (jack_nframes_t)((double)(r->due - now_us) * nframes / (double)(next_us - now_us));
        if (at >= nframes) at = nframes - 1;
        if (at < last) at = last; /* JACK takes a cycle's events in time order */
        if (jack_midi_event_write(buf, at, r->data, r->size) != 0) break; /* buffer full: the rest next cycle */
        last = at;
        note_written(p, r->data, r->size);
        if (r->due != 0 && r->due < now_us) {
            uint64_t late = now_us - r->due, max = atomic_load(&p->max_late_usecs);
            atomic_fetch_add(&p->late, 1);
            while (late > max && !atomic_compare_exchange_weak(&p->max_late_usecs, &max, late)) {}
        }
        done++;
    }
    if (done) {
        memmove(p->pending, &p->pending[done], (p->n_pending - done) * sizeof(jt_record));
        p->n_pending -= done;
        atomic_fetch_add(&p->written, done);
        atomic_fetch_sub(&p->queued, done);
    }
    return 0;
}

static int process_input(jack_nframes_t nframes, jt_port *p) {
    void *buf = jack_port_get_buffer(p->port, nframes);
    jack_nframes_t frames;
    jack_time_t now_us, next_us;
    float period;
    int timed = jack_get_cycle_times(p->client, &frames, &now_us, &next_us, &period) == 0 && next_us > now_us;
    uint32_t n = jack_midi_get_event_count(buf);
    for (uint32_t i = 0; i < n; i++) {
        jack_midi_event_t ev;
        if (jack_midi_event_get(&ev, buf, i) != 0) continue;
        /* the inverse of the output's placement, from this cycle's own times */
        jt_record rec = {.due = timed ? now_us + (uint64_t)((double)ev.time * (double)(next_us - now_us) / nframes)
                                      : jack_get_time()};
        rec.size = ev.size < JT_MAX_BYTES ? (uint32_t)ev.size : JT_MAX_BYTES;
        memcpy(rec.data, ev.buffer, rec.size);
        if (!ring_push(&p->ring, &rec)) atomic_fetch_add(&p->dropped, 1);
        else atomic_fetch_add(&p->written, 1);
    }
    return 0;
}

static int process(jack_nframes_t nframes, void *arg) {
    jt_port *p = arg;
    return p->is_output ? process_output(nframes, p) : process_input(nframes, p);
}

static void on_shutdown(void *arg) { atomic_store(&((jt_port *)arg)->shutdown, 1); }

static void quiet(const char *msg) { (void)msg; }

/* ---- the API called from Python (ctypes) ---- */

/* Open a client called client_name with one MIDI port called port_name (output when is_output), and activate it.
 * Returns NULL on failure, with *status set to JACK's status bits (or -1: out of memory / no port). */
void *jt_open(const char *client_name, const char *port_name, int is_output, int *status) {
    jack_set_error_function(quiet); /* the caller turns failures into one clear error */
    jack_set_info_function(quiet);
    jt_port *p = calloc(1, sizeof(jt_port));
    if (!p) { *status = -1; return NULL; }
    p->is_output = is_output;
    pthread_mutex_init(&p->producers, NULL);
    p->client = jack_client_open(client_name, JackNoStartServer, status);
    if (!p->client) { free(p); return NULL; }
    p->port = jack_port_register(p->client, port_name, JACK_MIDI_TYPE, is_output ? JackPortIsOutput : JackPortIsInput, 0);
    if (!p->port || jack_set_process_callback(p->client, process, p) != 0) {
        jack_client_close(p->client);
        free(p);
        *status = -1;
        return NULL;
    }
    jack_on_shutdown(p->client, on_shutdown, p);
    if (jack_activate(p->client) != 0) {
        jack_client_close(p->client);
        free(p);
        *status = -1;
        return NULL;
    }
    return p;
}

const char *jt_port_name(void *h) { return jack_port_name(((jt_port *)h)->port); }

int jt_connect(void *h, const char *source, const char *destination) {
    return jack_connect(((jt_port *)h)->client, source, destination);
}

uint64_t jt_time(void) { return jack_get_time(); }

/* Hand over one message for due (JACK usecs; 0: at once). Returns 1, 0 when the ring is full, -1 when the server
 * is gone, -2 for a message longer than JT_MAX_BYTES. */
int jt_send(void *h, const uint8_t *data, uint32_t size, uint64_t due) {
    jt_port *p = h;
    if (atomic_load(&p->shutdown)) return -1;
    if (size > JT_MAX_BYTES) return -2;
    jt_record rec = {.due = due, .size = size};
    memcpy(rec.data, data, size);
    pthread_mutex_lock(&p->producers);
    atomic_fetch_add(&p->queued, 1);
    int ok = ring_push(&p->ring, &rec);
    if (!ok) atomic_fetch_sub(&p->queued, 1);
    pthread_mutex_unlock(&p->producers);
    return ok;
}

/* Drop every message handed over and not yet written, then send a note-off for every note left sounding. */
int jt_flush(void *h) {
    jt_port *p = h;
    if (atomic_load(&p->shutdown)) return -1;
    jt_record rec = {.due = 0, .size = JT_FLUSH};
    pthread_mutex_lock(&p->producers);
    int ok = ring_push(&p->ring, &rec);
    pthread_mutex_unlock(&p->producers);
    return ok;
}

/* Input: the next received message into data (JT_MAX_BYTES), its frame's time in *time. Returns its size, 0 when
 * there is none. */
int jt_receive(void *h, uint8_t *data, uint64_t *time) {
    jt_record rec;
    if (!ring_pop(&((jt_port *)h)->ring, &rec)) return 0;
    memcpy(data, rec.data, rec.size);
    *time = rec.due;
    return (int)rec.size;
}

/* counters: written, late, max_late_usecs, dropped, queued, shutdown */
void jt_stats(void *h, uint64_t *out) {
    jt_port *p = h;
    out[0] = atomic_load(&p->written);
    out[1] = atomic_load(&p->late);
    out[2] = atomic_load(&p->max_late_usecs);
    out[3] = atomic_load(&p->dropped);
    out[4] = atomic_load(&p->queued);
    out[5] = (uint64_t)atomic_load(&p->shutdown);
}

void jt_close(void *h) {
    jt_port *p = h;
    if (!atomic_load(&p->shutdown)) jack_deactivate(p->client);
    jack_client_close(p->client);
    pthread_mutex_destroy(&p->producers);
    free(p);
}
