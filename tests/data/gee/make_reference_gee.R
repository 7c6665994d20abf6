# Reference GEE fits for crtsim (`crtsim fit --family ... --gee`): geepack's
# geeglm (exchangeable working correlation; estimates, alpha, phi, naive and
# sandwich SEs) and, computed here from geepack's solution with the
# published formulas, the Mancl-DeRouen (2001) and Kauermann-Carroll (2001)
# bias-corrected sandwich SEs:
#   V = B (sum_i D_i' V_i^-1 c_i c_i' V_i^-1 D_i) B,  B = (sum_i D_i' V_i^-1 D_i)^-1,
#   c_i = (I - H_i)^-1 e_i (MD) or (I - H_i)^-1/2 e_i (KC),  H_i = D_i B D_i' V_i^-1,
# with the principal square root (I - H)^-1/2 = V^1/2 (I - S)^-1/2 V^-1/2,
# S = V^-1/2 D B D' V^-1/2 (symmetric).
# Usage (in tests/data/gee): Rscript make_reference_gee.R
# Needs Debian packages r-base-core r-cran-geepack r-cran-jsonlite.
suppressMessages({ library(geepack); library(jsonlite) })
msqrt <- function(A, pow) { e <- eigen((A + t(A)) / 2, symmetric = TRUE)
  e$vectors %*% diag(e$values^pow, nrow(A)) %*% t(e$vectors) }
ref <- function(name, data, formula, cluster, family) {
  d <- read.csv(data)
  d <- d[complete.cases(d[, all.vars(as.formula(formula))]), ]
  d <- d[order(d[[cluster]]), ]
  d$.id <- as.integer(factor(d[[cluster]]))
  fam <- switch(family, binomial = binomial(), poisson = poisson())
  f <- geeglm(as.formula(formula), id = .id, data = d, family = fam, corstr = "exchangeable")
  X <- model.matrix(f); b <- coef(f); eta <- drop(X %*% b)
  mu <- fam$linkinv(eta); de <- fam$mu.eta(eta); va <- fam$variance(mu)
  alpha <- f$geese$alpha; phi <- f$geese$gamma; p <- ncol(X)
  ids <- split(seq_len(nrow(d)), d$.id)
  Vinv <- lapply(ids, function(ix) { m <- length(ix)
    R <- matrix(alpha, m, m); diag(R) <- 1
    A <- diag(sqrt(va[ix]), m); solve(phi * A %*% R %*% A) })
  H <- Reduce(`+`, Map(function(ix, Vi) { D <- de[ix] * X[ix, , drop = FALSE]; t(D) %*% Vi %*% D }, ids, Vinv))
  B <- solve(H)
  meat <- function(kind) Reduce(`+`, Map(function(ix, Vi) {
    D <- de[ix] * X[ix, , drop = FALSE]; e <- d[[all.vars(as.formula(formula))[1]]][ix] - mu[ix]
    if (kind != "robust") {
      Vh <- msqrt(solve(Vi), 0.5); Vih <- msqrt(Vi, 0.5)
      S <- Vih %*% D %*% B %*% t(D) %*% Vih
      core <- msqrt(diag(length(ix)) - S, if (kind == "md") -1 else -0.5)
      e <- Vh %*% core %*% Vih %*% e
    }
    g <- t(D) %*% Vi %*% e; g %*% t(g) }, ids, Vinv))
  se <- function(kind) sqrt(diag(B %*% meat(kind) %*% B))
  list(name = name, data = data, formula = formula, cluster = cluster, family = family,
       n_obs = nrow(d), n_clusters = length(ids), alpha = alpha, phi = phi,
       fixed = lapply(seq_len(p), function(j) list(term = colnames(X)[j], estimate = unname(b[j]),
         se_model = sqrt(f$geese$vbeta.naiv[j, j]), se_robust = unname(sqrt(diag(f$geese$vbeta))[j]),
         se_robust_here = unname(se("robust")[j]), se_md = unname(se("md")[j]), se_kc = unname(se("kc")[j]))),
       geepack_version = as.character(packageVersion("geepack")))
}
dir.create("fits", showWarnings = FALSE)
cases <- list(
  ref("gee_binary_parallel", "../glmm/data/crt_binary_parallel.csv",
      "recovered ~ arm + baseline_high + site", "team", "binomial"),
  ref("gee_count_parallel", "../glmm/data/crt_binary_parallel.csv",
      "contacts ~ arm + site", "team", "poisson"),
  ref("gee_binary_sw", "../glmm/data/crt_binary_sw.csv",
      "recovered ~ treat + period", "cluster", "binomial"))
for (r in cases) writeLines(toJSON(r, auto_unbox = TRUE, digits = NA, pretty = TRUE),
                            file.path("fits", paste0(r$name, ".json")))
