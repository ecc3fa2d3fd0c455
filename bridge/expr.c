/* expr: compiles a condition ("engine_metrics.temperature > 110 and not parked") into an
 * immutable tree and evaluates it against a cJSON payload. Pure; any thread; a compiled
 * expression is never modified, so many threads may evaluate it at once.
 *
 * How it works: a small scanner turns the source into tokens on demand (each token knows
 * its 1-based column), and a recursive-descent parser follows the grammar in expr.h.
 * "and" / "or" chains become one n-ary node, so a long chain costs no recursion depth;
 * parentheses and "not" nest, and are limited to EXPR_MAX_DEPTH so that neither the parser
 * nor the evaluator can exhaust the stack on hostile input. Errors stop at the first
 * problem and report its column.
 *
 * Evaluation turns each operand into a small tagged value (number, string, bool, null,
 * missing, other); a comparison whose operands do not have the same comparable type is
 * simply false. Nothing at run time can fail. */
#include "expr.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPR_MAX_DEPTH 64

enum node_kind { N_OR, N_AND, N_NOT, N_CMP, N_NUM, N_STR, N_BOOL, N_NULL, N_FIELD };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct node {
    enum node_kind kind;
    enum cmp_op op;          /* N_CMP */
    struct node **kids;      /* N_OR / N_AND: n >= 2; N_NOT: 1; N_CMP: 2 */
    size_t n, cap;
    double num;              /* N_NUM */
    bool b;                  /* N_BOOL */
    char *str;               /* N_STR: bytes (may hold NUL); N_FIELD: the dotted path */
    size_t len;
};

struct expr {
    char *src;
    struct node *root;
    const char *first_field; /* points into the tree, or NULL */
};

/* ---- scanner ----------------------------------------------------------------------- */

enum tok_kind {
    T_END, T_NUM, T_STR, T_NAME, T_LPAREN, T_RPAREN,
    T_AND, T_OR, T_NOT, T_TRUE, T_FALSE, T_NULL,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_BAD
};

struct token {
    enum tok_kind kind;
    size_t pos, len;         /* byte span in the source */
};

struct parser {
    const char *src;
    size_t pos;              /* scanner position */
    struct token tok;        /* current (look-ahead) token */
    int depth;
    const char *first_field;
    char *err;
    size_t errlen;
    int err_col;
    bool failed;
};

static void fail_at(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->err_col = (int)pos + 1;
    if (p->err && p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
}

static bool is_name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool is_name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Keywords are recognised only as a whole undotted name: "not.x" is a field. */
static const struct { const char *word; enum tok_kind kind; } keywords[] = {
    {"and", T_AND}, {"or", T_OR}, {"not", T_NOT},
    {"true", T_TRUE}, {"false", T_FALSE}, {"null", T_NULL},
};

/* Two-character operators first, so "<=" is not read as "<" "=". */
static const struct { const char *text; enum tok_kind kind; } operators[] = {
    {"==", T_EQ}, {"!=", T_NE}, {"<=", T_LE}, {">=", T_GE}, {"&&", T_AND}, {"||", T_OR},
    {"<", T_LT}, {">", T_GT}, {"!", T_NOT}, {"(", T_LPAREN}, {")", T_RPAREN},
};

static size_t scan_digits(const char *s, size_t i)
{
    while (isdigit((unsigned char)s[i]))
        i++;
    return i;
}

static size_t scan_number(struct parser *p, size_t i)
{
    const char *s = p->src;
    size_t start = i;
    if (s[i] == '-')
        i++;
    size_t int_end = scan_digits(s, i);
    size_t frac_digits = 0;
    if (s[int_end] == '.') {
        size_t frac_end = scan_digits(s, int_end + 1);
        frac_digits = frac_end - (int_end + 1);
        i = frac_end;
    } else {
        i = int_end;
    }
    if (int_end == start + (s[start] == '-') && frac_digits == 0) {
        fail_at(p, start, "malformed number");
        return i;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        size_t exp_end = scan_digits(s, j);
        if (exp_end == j) {
            fail_at(p, start, "malformed number exponent");
            return exp_end;
        }
        i = exp_end;
    }
    if (is_name_char(s[i]) || s[i] == '.')
        fail_at(p, start, "malformed number");
    return i;
}

static size_t scan_string(struct parser *p, size_t i)
{
    char quote = p->src[i];
    size_t start = i++;
    while (p->src[i] && p->src[i] != quote) {
        if (p->src[i] == '\\' && p->src[i + 1])
            i++;
        i++;
    }
    if (!p->src[i]) {
        fail_at(p, start, "unterminated string");
        return i;
    }
    return i + 1;
}

static size_t scan_name(struct parser *p, size_t i)
{
    size_t start = i;
    for (;;) {
        while (is_name_char(p->src[i]))
            i++;
        if (p->src[i] != '.')
            return i;
        if (!is_name_start(p->src[i + 1])) {
            fail_at(p, i + 1, "field name expected after '.' in '%.*s'", (int)(i + 1 - start),
                    p->src + start);
            return i + 1;
        }
        i++;
    }
}

static void next(struct parser *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    while (isspace((unsigned char)s[i]))
        i++;
    struct token t = {T_BAD, i, 0};
    size_t end = i;
    if (!s[i]) {
        t.kind = T_END;
    } else if (isdigit((unsigned char)s[i]) || ((s[i] == '-' || s[i] == '.') &&
               (isdigit((unsigned char)s[i + 1]) || (s[i + 1] == '.' && isdigit((unsigned char)s[i + 2]))))) {
        t.kind = T_NUM;
        end = scan_number(p, i);
    } else if (s[i] == '"' || s[i] == '\'') {
        t.kind = T_STR;
        end = scan_string(p, i);
    } else if (is_name_start(s[i])) {
        t.kind = T_NAME;
        end = scan_name(p, i);
        for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
            if (strlen(keywords[k].word) == end - i && memcmp(keywords[k].word, s + i, end - i) == 0)
                t.kind = keywords[k].kind;
        }
    } else {
        for (size_t k = 0; k < sizeof(operators) / sizeof(operators[0]); k++) {
            size_t n = strlen(operators[k].text);
            if (strncmp(s + i, operators[k].text, n) == 0) {
                t.kind = operators[k].kind;
                end = i + n;
                break;
            }
        }
        if (t.kind == T_BAD) {
            if (s[i] == '=')
                fail_at(p, i, "unexpected '='; did you mean '=='?");
            else if (s[i] == '&' || s[i] == '|')
                fail_at(p, i, "unexpected '%c'; did you mean '%c%c'?", s[i], s[i], s[i]);
            else if (isprint((unsigned char)s[i]))
                fail_at(p, i, "unexpected character '%c'", s[i]);
            else
                fail_at(p, i, "unexpected byte 0x%02x", (unsigned char)s[i]);
            end = i + 1;
        }
    }
    t.len = end - i;
    p->tok = t;
    p->pos = end;
}

/* ---- tree -------------------------------------------------------------------------- */

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static struct node *node_new(struct parser *p, enum node_kind kind, size_t pos)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n)
        fail_at(p, pos, "out of memory");
    else
        n->kind = kind;
    return n;
}

static bool node_add(struct parser *p, struct node *parent, struct node *kid, size_t pos)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 2;
        struct node **kids = realloc(parent->kids, cap * sizeof(*kids));
        if (!kids) {
            fail_at(p, pos, "out of memory");
            node_free(kid);
            return false;
        }
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return true;
}

/* ---- parser ------------------------------------------------------------------------ */

static struct node *parse_or(struct parser *p);

static void fail_unexpected(struct parser *p)
{
    if (p->tok.kind == T_END)
        fail_at(p, p->tok.pos, "unexpected end of expression");
    else
        fail_at(p, p->tok.pos, "unexpected '%.*s'", (int)p->tok.len, p->src + p->tok.pos);
}

static char *unescape(const char *s, size_t len, size_t *outlen)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len) {
            c = s[++i];
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            else if (c == 'r')
                c = '\r';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static struct node *parse_literal(struct parser *p)
{
    if (p->failed)
        return NULL;
    struct token t = p->tok;
    const char *text = p->src + t.pos;
    struct node *n = NULL;
    switch (t.kind) {
    case T_NUM: {
        n = node_new(p, N_NUM, t.pos);
        if (!n)
            return NULL;
        char buf[64];
        if (t.len >= sizeof(buf)) {
            fail_at(p, t.pos, "number too long");
            break;
        }
        memcpy(buf, text, t.len);
        buf[t.len] = '\0';
        n->num = strtod(buf, NULL);
        if (!isfinite(n->num))
            fail_at(p, t.pos, "number out of range");
        break;
    }
    case T_STR:
        n = node_new(p, N_STR, t.pos);
        if (n && !(n->str = unescape(text + 1, t.len - 2, &n->len)))
            fail_at(p, t.pos, "out of memory");
        break;
    case T_TRUE:
    case T_FALSE:
        n = node_new(p, N_BOOL, t.pos);
        if (n)
            n->b = t.kind == T_TRUE;
        break;
    case T_NULL:
        n = node_new(p, N_NULL, t.pos);
        break;
    case T_NAME:
        n = node_new(p, N_FIELD, t.pos);
        if (n && !(n->str = strndup(text, t.len)))
            fail_at(p, t.pos, "out of memory");
        if (n && n->str) {
            n->len = t.len;
            if (!p->first_field)
                p->first_field = n->str;
        }
        break;
    default:
        fail_unexpected(p);
        return NULL;
    }
    next(p);
    return n;
}

static struct node *parse_operand(struct parser *p)
{
    if (p->tok.kind != T_LPAREN)
        return parse_literal(p);
    size_t open = p->tok.pos;
    if (++p->depth > EXPR_MAX_DEPTH) {
        fail_at(p, open, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
        return NULL;
    }
    next(p);
    struct node *n = parse_or(p);
    if (!p->failed && p->tok.kind != T_RPAREN) {
        if (p->tok.kind == T_END)
            fail_at(p, p->tok.pos, "missing ')' to close '(' at column %zu", open + 1);
        else
            fail_at(p, p->tok.pos, "unexpected '%.*s'; missing ')' to close '(' at column %zu",
                    (int)p->tok.len, p->src + p->tok.pos, open + 1);
    }
    p->depth--;
    if (!p->failed)
        next(p);
    return n;
}

static bool is_cmp(enum tok_kind k) { return k >= T_EQ && k <= T_GE; }

static struct node *parse_cmp(struct parser *p)
{
    struct node *lhs = parse_operand(p);
    if (p->failed || !is_cmp(p->tok.kind))
        return lhs;
    struct node *n = node_new(p, N_CMP, p->tok.pos);
    if (!n) {
        node_free(lhs);
        return NULL;
    }
    if (!node_add(p, n, lhs, p->tok.pos)) {
        node_free(n);
        return NULL;
    }
    n->op = (enum cmp_op)(p->tok.kind - T_EQ);
    next(p);
    struct node *rhs = parse_operand(p);
    if (!node_add(p, n, rhs, p->tok.pos) || p->failed)
        return n;
    if (is_cmp(p->tok.kind))
        fail_at(p, p->tok.pos, "comparisons cannot be chained; use 'and' ('a < b and b < c')");
    return n;
}

static struct node *parse_not(struct parser *p)
{
    if (p->tok.kind != T_NOT)
        return parse_cmp(p);
    size_t pos = p->tok.pos;
    if (++p->depth > EXPR_MAX_DEPTH) {
        fail_at(p, pos, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
        return NULL;
    }
    next(p);
    struct node *n = node_new(p, N_NOT, pos);
    if (n)
        node_add(p, n, parse_not(p), pos);
    p->depth--;
    return n;
}

/* One n-ary node for "a op b op c ...": flat, so long chains need no recursion. */
static struct node *parse_chain(struct parser *p, enum tok_kind op, enum node_kind kind,
                                struct node *(*sub)(struct parser *))
{
    struct node *first = sub(p);
    if (p->failed || p->tok.kind != op)
        return first;
    struct node *n = node_new(p, kind, p->tok.pos);
    if (!n) {
        node_free(first);
        return NULL;
    }
    if (!node_add(p, n, first, p->tok.pos)) {
        node_free(n);
        return NULL;
    }
    while (!p->failed && p->tok.kind == op) {
        next(p);
        if (!node_add(p, n, sub(p), p->tok.pos))
            break;
    }
    return n;
}

static struct node *parse_and(struct parser *p) { return parse_chain(p, T_AND, N_AND, parse_not); }
static struct node *parse_or(struct parser *p) { return parse_chain(p, T_OR, N_OR, parse_and); }

struct expr *expr_compile(const char *src, char *err, size_t errlen, int *err_col)
{
    struct parser p = {.src = src ? src : "", .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    struct node *root = NULL;
    next(&p);
    if (!p.failed && p.tok.kind == T_END) {
        fail_at(&p, p.tok.pos, "empty expression");
    } else if (!p.failed) {
        root = parse_or(&p);
        if (!p.failed && p.tok.kind != T_END)
            fail_at(&p, p.tok.pos, "unexpected '%.*s' after the end of the expression",
                    (int)p.tok.len, p.src + p.tok.pos);
    }
    struct expr *e = NULL;
    if (!p.failed) {
        e = calloc(1, sizeof(*e));
        if (!e || !(e->src = strdup(p.src))) {
            free(e);
            e = NULL;
            fail_at(&p, 0, "out of memory");
        }
    }
    if (p.failed) {
        node_free(root);
        if (err_col)
            *err_col = p.err_col;
        return NULL;
    }
    e->root = root;
    e->first_field = p.first_field;
    if (err_col)
        *err_col = 0;
    return e;
}

void expr_free(struct expr *e)
{
    if (!e)
        return;
    node_free(e->root);
    free(e->src);
    free(e);
}

const char *expr_source(const struct expr *e) { return e ? e->src : NULL; }

const char *expr_first_field(const struct expr *e) { return e ? e->first_field : NULL; }

/* ---- evaluation -------------------------------------------------------------------- */

enum val_type { V_MISSING, V_OTHER, V_NULL, V_BOOL, V_NUM, V_STR };

struct val {
    enum val_type type;
    double num;
    bool b;
    const char *s;
    size_t len;
};

static bool eval_node(const struct node *n, const cJSON *payload);

static struct val operand_value(const struct node *n, const cJSON *payload)
{
    struct val v = {V_MISSING, 0, false, NULL, 0};
    switch (n->kind) {
    case N_NUM: v.type = V_NUM; v.num = n->num; return v;
    case N_STR: v.type = V_STR; v.s = n->str; v.len = n->len; return v;
    case N_BOOL: v.type = V_BOOL; v.b = n->b; return v;
    case N_NULL: v.type = V_NULL; return v;
    case N_FIELD: break;
    default: v.type = V_BOOL; v.b = eval_node(n, payload); return v;
    }
    const cJSON *j = payload ? json_path_get(payload, n->str, n->len) : NULL;
    if (!j)
        return v;
    if (cJSON_IsNumber(j)) {
        v.type = V_NUM;
        v.num = j->valuedouble;
    } else if (cJSON_IsString(j) && j->valuestring) {
        v.type = V_STR;
        v.s = j->valuestring;
        v.len = strlen(j->valuestring);
    } else if (cJSON_IsBool(j)) {
        v.type = V_BOOL;
        v.b = cJSON_IsTrue(j);
    } else if (cJSON_IsNull(j)) {
        v.type = V_NULL;
    } else {
        v.type = V_OTHER;
    }
    return v;
}

static bool order_holds(enum cmp_op op, int c)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    case OP_GE: return c >= 0;
    }
    return false;
}

static bool compare(enum cmp_op op, struct val a, struct val b)
{
    if (a.type != b.type || a.type == V_MISSING || a.type == V_OTHER)
        return false;
    switch (a.type) {
    case V_NUM:
        if (isnan(a.num) || isnan(b.num))
            return false;
        return order_holds(op, (a.num > b.num) - (a.num < b.num));
    case V_STR: {
        size_t m = a.len < b.len ? a.len : b.len;
        int c = memcmp(a.s, b.s, m);
        if (c == 0)
            c = (a.len > b.len) - (a.len < b.len);
        return order_holds(op, c);
    }
    case V_BOOL:
        if (op != OP_EQ && op != OP_NE)
            return false;
        return order_holds(op, a.b != b.b);
    case V_NULL:
        return op == OP_EQ;
    default:
        return false;
    }
}

static bool truthy(struct val v)
{
    switch (v.type) {
    case V_BOOL: return v.b;
    case V_NUM: return v.num != 0 && !isnan(v.num);
    case V_STR: return v.len > 0;
    default: return false;
    }
}

static bool eval_node(const struct node *n, const cJSON *payload)
{
    switch (n->kind) {
    case N_OR:
        for (size_t i = 0; i < n->n; i++)
            if (eval_node(n->kids[i], payload))
                return true;
        return false;
    case N_AND:
        for (size_t i = 0; i < n->n; i++)
            if (!eval_node(n->kids[i], payload))
                return false;
        return true;
    case N_NOT:
        return !eval_node(n->kids[0], payload);
    case N_CMP:
        return compare(n->op, operand_value(n->kids[0], payload),
                       operand_value(n->kids[1], payload));
    default:
        return truthy(operand_value(n, payload));
    }
}

bool expr_eval(const struct expr *e, const cJSON *payload)
{
    return e && e->root && eval_node(e->root, payload);
}
